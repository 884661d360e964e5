"""Everything that touches a table or a path: Delta I/O, locations and names, change detection,
pre-write checks, unreadable files, the run log and the session."""
