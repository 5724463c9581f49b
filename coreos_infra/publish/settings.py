"""Publishing settings: the ``publish:`` mapping of a site file, with command-line overrides.

```yaml
publish:
  store: s3://bucket/prefix          # or a directory (relative to the project root) or file:///dir
  endpoint_url: https://s3.example   # S3-compatible server (else AWS_ENDPOINT_URL or AWS itself)
  public_base_url: https://images.example/   # what readers use for the store's root
  signing_key:
    gnupg_home: /etc/coreos-infra/gnupg      # a GnuPG home holding the site's secret key
    key_id: 0123456789ABCDEF...               # key id or fingerprint inside it
  keyring: keys/lab.asc              # trusted public keys for downloads (a file or a directory)
```

Every key is optional. Without a store the default is ``artifacts/store/``; without a signing key the
demo uses (and on first use generates) a throwaway key under ``artifacts/keys/<site>/``. Credentials
never belong here (boto3's credential chain supplies them), and unknown keys are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from coreos_infra.paths import artifacts_dir
from coreos_infra.recipes.yamlsrc import Node, load_yaml

PUBLISH_KEYS = ("store", "endpoint_url", "public_base_url", "signing_key", "keyring")
SIGNING_KEYS = ("gnupg_home", "key_id")


@dataclass(frozen=True)
class SigningSettings:
    gnupg_home: Path | None = None
    key_id: str | None = None

    @property
    def configured(self) -> bool:
        return self.gnupg_home is not None or self.key_id is not None


@dataclass(frozen=True)
class PublishSettings:
    store: str
    endpoint_url: str | None = None
    public_base_url: str | None = None
    signing: SigningSettings = SigningSettings()
    keyring: Path | None = None


def default_store(root: Path) -> str:
    return str(artifacts_dir(root) / "store")


def demo_key_dir(root: Path, site: str) -> Path:
    """Where the throwaway demo signing key of ``site`` lives."""
    return artifacts_dir(root) / "keys" / site


def _path(node: Node, root: Path) -> Path:
    p = Path(node.str()).expanduser()
    return p if p.is_absolute() else root / p


def _store(node: Node, root: Path) -> str:
    value = node.str().strip()
    if not value:
        raise node.error("empty store")
    if "://" in value:
        if not value.startswith(("s3://", "file://")):
            raise node.error(
                f"unsupported store URL {value!r}", hint="use s3://BUCKET[/PREFIX], file:///DIR or a path"
            )
        return value
    return str(_path(node, root))


def _url(node: Node) -> str:
    value = node.str().strip()
    if not value.startswith(("http://", "https://", "file://")):
        raise node.error(f"expected an http(s):// or file:// URL, got {value!r}")
    return value


def site_settings(root: Path, site: str) -> PublishSettings:
    """The settings of ``site`` from ``recipes/sites/<site>.yaml`` (defaults where absent)."""
    settings = PublishSettings(store=default_store(root))
    path = root / "recipes" / "sites" / f"{site}.yaml"
    if not path.is_file():
        return settings
    try:
        display = str(path.relative_to(root))
    except ValueError:
        display = str(path)
    doc = load_yaml(path, display)
    if not doc.is_mapping:
        return settings
    node = doc.mapping().get("publish")
    if node is None or node.is_null:
        return settings
    m = node.mapping(PUBLISH_KEYS)
    if (n := m.get("store")) is not None:
        settings = replace(settings, store=_store(n, root))
    if (n := m.get("endpoint_url")) is not None:
        settings = replace(settings, endpoint_url=_url(n))
    if (n := m.get("public_base_url")) is not None:
        settings = replace(settings, public_base_url=_url(n))
    if (n := m.get("keyring")) is not None:
        settings = replace(settings, keyring=_path(n, root))
    if (n := m.get("signing_key")) is not None:
        sm = n.mapping(SIGNING_KEYS)
        home = sm.get("gnupg_home")
        key_id = sm.get("key_id")
        settings = replace(
            settings,
            signing=SigningSettings(
                gnupg_home=_path(home, root) if home is not None else None,
                key_id=key_id.str() if key_id is not None else None,
            ),
        )
    return settings


def resolve(
    root: Path,
    site: str,
    *,
    store: str | None = None,
    endpoint_url: str | None = None,
    public_base_url: str | None = None,
    gnupg_home: str | None = None,
    key_id: str | None = None,
    keyring: str | None = None,
) -> PublishSettings:
    """The site's settings with the command-line values (when given) taking precedence."""
    s = site_settings(root, site)
    if store:
        s = replace(s, store=store)
    if endpoint_url:
        s = replace(s, endpoint_url=endpoint_url)
    if public_base_url:
        s = replace(s, public_base_url=public_base_url)
    if keyring:
        s = replace(s, keyring=Path(keyring))
    if gnupg_home or key_id:
        s = replace(
            s,
            signing=SigningSettings(
                gnupg_home=Path(gnupg_home) if gnupg_home else s.signing.gnupg_home,
                key_id=key_id or s.signing.key_id,
            ),
        )
    return s
