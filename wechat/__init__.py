"""The WeChat OA and WeCom protocols and API clients. Imports nothing of Harpoon's."""
