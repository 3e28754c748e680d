"""Federated pretraining on Flower: every site trains the pretraining encoders on its own sessions.

Only model weights travel; session files never leave a site. One module per job:

- :mod:`.config`: the federated settings (``configs/federated/*.yaml``).
- :mod:`.weights`: model state <-> Flower ``ArrayRecord``, weighted averages, FedBuff staleness weights.
- :mod:`.protocol`: the message records and the keys a site's reply may hold.
- :mod:`.sessions`: a site's session files from paths, folders or globs (no torch: checked before any process starts).
- :mod:`.site`: a site's side: its sessions, the modality check, N local steps from received weights.
- :mod:`.client_app`: the Flower ``ClientApp`` around :mod:`.site`.
- :mod:`.run_folder`: the server's output folder, an ordinary pretraining run (``emosync evaluate`` reads it).
- :mod:`.federation`: the server's registry of sites, handshake and message exchange over the Grid.
- :mod:`.rounds`: synchronous rounds (Flower's FedAvg / FedProx) and asynchronous buffered aggregation.
- :mod:`.privacy`: differential privacy on the updates (Flower's DP wrappers, opacus' RDP epsilon) and
  SecAgg+ secure aggregation (Flower's workflow and mod), both optional.
- :mod:`.server_app`: the Flower ``ServerApp``: handshake with the sites, then the chosen loop.
- :mod:`.app_bundle`: the small Flower app folder that ``flwr run`` ships to the SuperLink.
- :mod:`.processes`: SuperLink / SuperNode / ``flwr run`` processes, started and always stopped.
- :mod:`.launch`: what ``local``, ``serve`` and ``join`` run.
- :mod:`.cli`: ``emosync federate serve|join|local``.

Nothing here is imported by ``import fusion``; Flower is needed only by the modules that use it.
"""
