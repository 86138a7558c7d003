"""One module per `kdedge` command: parse what Typer hands over, call the library, print. Only
kdedge.cli imports these modules."""
