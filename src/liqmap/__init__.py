"""liqmap: Jupiter Perps liquidation heatmaps from on-chain positions."""

__version__ = "0.1.0"
