"""What a run is made of before it starts: the run options (shared by ``cannonade run``,
``cannonade submit`` and the HTTP API) and the checked plan they make."""
