"""`flare-node contract`: compile, deploy and administer the FlareRounds round contract.

Every command takes `--rpc`; commands on a deployed contract take `--deployment FILE` (the
record `deploy` writes) or `--address`; commands that send a transaction take `--keystore` or,
on local dev chains only, `--dev-account N`. An `eth-tester://` chain lives inside one process,
so a deployment there is gone when the command exits: use a node such as anvil across commands.
"""

from __future__ import annotations

import typer

from flare.cli.contract import admin, build, info

app = typer.Typer(
    help="Compile, deploy and administer the FlareRounds contract. "
    "An eth-tester:// chain lives only inside one process: use --rpc http://... "
    "(anvil or a real node) to work with a deployment across commands.",
    no_args_is_help=True,
)

app.command("compile")(build.compile_)
app.command("deploy")(build.deploy)
app.command("info")(info.info)
app.command("start")(admin.start)
app.command("allow")(admin.allow)
app.command("disallow")(admin.disallow)
app.command("allowlist")(admin.allowlist)
app.command("set-config")(admin.set_config)
app.command("pause")(admin.pause)
app.command("unpause")(admin.unpause)
app.command("transfer-ownership")(admin.transfer_ownership)
app.command("accept-ownership")(admin.accept_ownership)
app.command("close-round")(admin.close_round)
