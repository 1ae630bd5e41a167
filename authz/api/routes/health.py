"""Liveness and chain information."""

from fastapi import APIRouter

from authz.api.deps import ServicesDep
from authz.api.schemas import ChainDetails, ChainInfo, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(svc: ServicesDep) -> Health:
    """Liveness: ``{"status": "ok", "chain": {backend, chain_id, block_number}}``."""
    return Health(
        status="ok",
        chain=ChainInfo(
            backend=svc.chain.kind,
            chain_id=svc.chain.chain_id,
            block_number=svc.chain.block_number(),
        ),
    )


@router.get("/v1/chain", response_model=ChainDetails)
def chain_details(svc: ServicesDep) -> ChainDetails:
    """The chain, the registry address (EIP-712 ``verifyingContract``), the relayer and
    the last block projected into the index."""
    return ChainDetails(
        backend=svc.chain.kind,
        chain_id=svc.chain.chain_id,
        block_number=svc.chain.block_number(),
        registry=svc.ledger.address,
        relayer=svc.chain.relayer,
        indexed_block=svc.indexer.cursor(),
    )
