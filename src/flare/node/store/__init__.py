"""Content storage backends for the `flare.protocol.store.BlobStore` port.

`embedded.EmbeddedStore` keeps blocks in a directory; `ipfs.IpfsStore` talks to an IPFS daemon.
Import them from their modules: the IPFS one pulls in an HTTP client.
"""
