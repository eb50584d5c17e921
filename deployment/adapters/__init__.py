"""Custom Python adapters and the generic adapter that replaces them.

Pure analysis (reads source as text, never imports it): ``source`` (safe
reading and module bindings), ``hierarchy`` (classes and bases across files),
``discovery`` (every way a tool is reachable), ``scope``/``evidence``/
``classify`` (one library call with its mapping, or the reasons it is not),
``analyzer`` (the entry point), ``proposal`` (the generic configuration).
Running code: ``generic`` (the generic adapter), ``jsonify`` (results as
JSON), ``casegen`` (inputs from annotations), ``sandbox`` (one side of a
comparison in a child process) and ``equivalence`` (both sides compared).
"""
