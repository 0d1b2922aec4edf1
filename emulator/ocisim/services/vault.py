"""Placeholder: Vault secrets are being written."""

from __future__ import annotations

from ocisim.framework import Service


class VaultsService(Service):
    name = "vaults"
    versions = ("20180608",)


class SecretsService(Service):
    name = "secrets"
    versions = ("20190301",)
