"""The reference worker fleet: worker processes hosting one adapter each behind a balancing front.

``config`` reads the deployment config, ``adapter_host`` loads and runs an
adapter, ``session_access`` is the one place instances touch sessions,
``worker`` is one instance's process, ``instances`` manages them, ``front``
serves traffic, health and the admin API, ``load`` generates traffic.
"""
