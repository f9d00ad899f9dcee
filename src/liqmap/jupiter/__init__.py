"""Jupiter Perps on chain: account layouts, decoders and encoders, and the exact formulas.

Pure code over bytes, numpy arrays and dataclasses: nothing here touches the network.
"""
