"""`imagestore serve`: the ARM-compatible REST API over the store."""

from __future__ import annotations

import click

from ..api.context import DEFAULT_PAGE_SIZE, MAX_BODY, Settings
from ..errors import InvalidArgument
from .common import common_options, open_home


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default).")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port; the URL printed says which).")
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of --tls-cert.")
@click.option("--tls-self-signed", is_flag=True,
              help="Serve HTTPS with a certificate signed by the store's own CA (made on "
                   "first use; its path, <store>/tls/ca.pem, is printed for clients' "
                   "REQUESTS_CA_BUNDLE / SSL_CERT_FILE).")
@click.option("--page-size", default=DEFAULT_PAGE_SIZE, show_default=True,
              type=click.IntRange(1, 10000), help="Items per page of a list (nextLink after).")
@click.option("--max-body", default=MAX_BODY, show_default=True, type=click.IntRange(1024),
              help="Largest request body in bytes (413 above).")
@click.option("--retry-after", default=1, show_default=True, type=click.IntRange(0, 3600),
              help="Seconds clients wait between polls of a long-running operation "
                   "(0: no Retry-After header; clients use their own interval).")
@click.option("--principal-import-dir", "import_dirs", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False),
              help="A directory whose files directory principals' requests may name as "
                   "sources or disk paths (repeatable; default none: only the owner's tokens "
                   "may name host files).")
@common_options
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, tls_cert: str | None,
              tls_key: str | None, tls_self_signed: bool, page_size: int, max_body: int,
              retry_after: int, import_dirs: tuple[str, ...]) -> None:
    """Serve the ARM REST API (Microsoft.Compute galleries, images, versions, disks) so the
    Azure SDKs and az drive this store. Every request needs `Authorization: Bearer TOKEN`
    (`imagestore token create`). Stops on SIGTERM/Ctrl-C, letting requests finish.

    \b
    Example:
      imagestore serve --port 8443
      TOKEN=$(imagestore token create --query accessToken -o tsv)
    """
    from ..api.server import serve

    home = open_home(ctx)
    if tls_self_signed or tls_cert or tls_key:
        from ..api import tls

        if tls_self_signed:
            if tls_cert or tls_key:
                raise InvalidArgument("--tls-self-signed: not with --tls-cert/--tls-key",
                                      target="tls-self-signed")
            files = tls.ensure_self_signed(home.root, tls.hosts_for(host))
            tls_cert, tls_key = files.cert, files.key
            click.echo(f"imagestore serve: CA certificate {files.ca_cert} (clients: "
                       f"REQUESTS_CA_BUNDLE={files.ca_cert}, SSL_CERT_FILE for Go)", err=True)
        else:
            tls.check_files(tls_cert, tls_key)
    serve(home.root, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
          settings=Settings(page_size=page_size, max_body=max_body, retry_after=retry_after,
                            principal_import_dirs=tuple(import_dirs)))
