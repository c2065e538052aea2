"""What the tests share that is not a fixture (fixtures are in conftest.py): constants,
helpers, fakes and harnesses. Test modules import from here, never from each other.

- constants: the hang guard ``GUARD``, the dev seed's ids, the default ports
- wait: polling until something holds (``wait_for``, ``wait_until``, ``eventually``)
- ports: free ports handed out once; a busy one
- processes: stopping child processes for sure, memory figures
- servers: SSH, PostgreSQL and HTTP servers for targets; the programs a test needs
- cli, dev: the bconnect CLI and `bconnect dev` as child processes
- controller: a real controller in a thread (``start_controller``)
- dataplane: targets, credentials, sessions and `bconnect connect` processes
- echo: the echo server targets point at
- cluster_api: the worker-facing cluster API called by hand
- cluster_harness, cluster_sessions: multi-process clusters and sessions through them
- worker_harness, worker_client, fake_cluster: the worker in-process and its clients
- fake_controller, fake_worker, http_servers: fakes over real sockets
- pgserver, tls_files, plugin_dists, token_vector, hardening: the rest
"""
