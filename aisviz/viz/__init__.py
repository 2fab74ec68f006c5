"""Figures: plotly builders for the dashboard and matplotlib figures for files. Imports only aisviz.core and
the base modules."""
