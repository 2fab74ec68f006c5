"""Data in and out: data-set folders, the catalog and downloads, the generated set, atomic storage, rsatoolbox
and pandas adapters, JSON output. Imports only aisviz.core and the base modules."""
