"""The gnpcheck property suite (a package so that its module names never clash with tests/)."""
