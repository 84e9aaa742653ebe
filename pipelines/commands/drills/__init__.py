"""`make drills`: incidents injected into replayed days, and what the pipeline does about them."""
