"""The shared core: contacts, identities and merges, accounts and company names, titles ->
role and seniority, tags and tag rules, touchpoint vocabulary, imports, channels and users."""
