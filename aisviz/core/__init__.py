"""The method's computation: alignment, engines, validation splits, heatmaps, metrics and noise ceilings.

Imports only aisviz.errors and aisviz.config. Submodules load on demand (torch only where an engine needs it).
"""
