"""Custom Python adapters and the generic adapter that replaces them.

``analyzer`` reads adapter source statically (it never imports it) and says,
per tool, whether it is one library call the generic adapter can make;
``proposal`` turns that into a generic configuration; ``generic`` is the
generic adapter itself; ``equivalence`` runs both on the same inputs in
sandboxed subprocesses and compares what comes back.
"""
