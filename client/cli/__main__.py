from client.cli import entry

entry()
