"""The durable inbox: the store callbacks write to, the drain (handlers -> rules -> scoring ->
journey reactions, one transaction per batch) and the sweeper."""
