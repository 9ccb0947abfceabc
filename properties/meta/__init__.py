"""Tests of the property suite itself: its strategies, its target selection, and that it fails
on deliberately broken targets."""
