"""Training: end to end with the backbone fine-tuned (``finetune``, ``python -m c3n.train``), or the
decoder alone over a frozen backbone from a feature cache (``featcache``, ``frozen``); scoring
frozen-backbone checkpoints on that cache (``eval_cached``) and their learning curves (``curves``).
"""
