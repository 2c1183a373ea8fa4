"""Tools that read finished reports: verify and the notebook view."""
