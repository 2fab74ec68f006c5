"""Serving the dashboard with Voila (`aisviz serve`): the server process, its handlers and page template."""
