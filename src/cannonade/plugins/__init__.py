"""Plugins: protocol, extractor, assertion and output add-ons, in Python or WASM.

``manifest`` reads a plugin's ``plugin.toml``; ``registry`` finds installed plugins;
``index`` reads the plugin index; ``install`` puts a plugin in place. See docs/plugins.md.
"""
