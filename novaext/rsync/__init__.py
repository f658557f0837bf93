"""The copy channel between compute hosts: each host's rsync daemon
(daemon, tls), the client that pushes to and pulls from a peer's daemon
(client), the peer's address (peer_address), and Nova's RemoteFilesystem
served over it (remotefs)."""
