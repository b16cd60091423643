"""The WeCom side of selling: staff, 联系我 codes, welcomes, group sends, notifications."""
