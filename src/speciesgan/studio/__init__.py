"""``speciesgan studio``: a local web page for browsing, mixing and keeping pictures."""
