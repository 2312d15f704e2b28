"""`python -m local_stack._reaper --pid-fd N -- CMD`: run CMD under the subreaper of
`_process_tree` (a module of its own, so running it does not import the package twice)."""

from ._process_tree import main

if __name__ == "__main__":
    main()
