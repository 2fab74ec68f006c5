"""A static site of result bundles: `aisviz site --bundles DIR --out SITE` (`aisviz.site.write`), for a class, a
paper or a course page: it opens from a file or any web host, offline, with no Python and no kernel."""
from aisviz.site.writer import SiteReport, write

__all__ = ["SiteReport", "write"]
