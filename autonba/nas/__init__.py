"""Network half of the joint search: search-space layout and candidate operations."""
