"""The chain adapter: deploy FlareRounds and speak to it through web3 as a `Ledger`."""
