"""Jupiter's Anchor CPI events: bytes built from the documented layout, decoded back."""

from __future__ import annotations

import hashlib
import struct

import pytest
from solders.pubkey import Pubkey

from liqmap.jupiter import events as E

from scripted_rpc import PERPS, transaction

POSITION = str(Pubkey.new_unique())
OWNER = str(Pubkey.new_unique())
FULL = {"positionKey": POSITION, "positionSide": 1, "positionSizeUsd": 12_345_678_901,
        "hasProfit": False, "pnlDelta": 1_000_000, "owner": OWNER, "price": 142_873_100,
        "feeUsd": 8_641_975, "liquidationFeeUsd": 24_691_358, "openTime": 1_700_000_000,
        "positionFeeUsd": 1, "fundingFeeUsd": 2, "priceImpactFeeUsd": 3,
        "originalPositionCollateralUsd": 4, "positionCollateralUsd": 5,
        "positionOpenTime": 6, "positionPrice": 150_000_000}


def _full(n_fields: int | None = None) -> bytes:
    return E.encode_event(E.LIQUIDATE_FULL_POSITION_EVENT, E.LIQUIDATE_FULL_FIELDS, FULL,
                          n_fields)


def test_anchor_tag_and_discriminators_are_the_sha256_prefixes() -> None:
    def sha8(text: str) -> bytes:
        return hashlib.sha256(text.encode()).digest()[:8]

    assert sha8("anchor:event")[::-1] == E.EVENT_TAG  # Anchor stores it as a u64, LE
    assert sha8("event:LiquidateFullPositionEvent") == E.LIQUIDATE_FULL_POSITION_EVENT
    assert sha8("event:LiquidatePositionEvent") == E.LIQUIDATE_POSITION_EVENT
    assert sha8("event:DecreasePositionEvent") == E.DECREASE_POSITION_EVENT
    assert sha8("global:liquidate_full_position4") == E.LIQUIDATE_FULL_POSITION4
    assert sha8("global:liquidate_full_position2") == E.LIQUIDATE_FULL_POSITION2


def test_full_payload_decodes_every_field() -> None:
    data = _full()
    # 7 keys (32 B), u8, bool, 14 u64/i64: the payload length of the documented layout
    assert len(data) == 16 + 7 * 32 + 2 + 15 * 8
    event = E.decode_event(data)
    assert event is not None and event.liquidation
    assert event.position_key == POSITION and event.name == "LiquidateFullPositionEvent"
    assert event.price_usd == 142.8731 and event.fee_usd == 8.641975
    assert event.liquidation_fee_usd == 24.691358 and event.size_usd == 12_345.678901
    fields = dict(event.fields)
    assert fields["owner"] == OWNER and fields["positionPrice"] == 150_000_000
    assert fields["openTime"] == 1_700_000_000 and fields["hasProfit"] is False


@pytest.mark.parametrize("n_fields", [16, 17, 20])
def test_short_legacy_payloads_are_accepted(n_fields: int) -> None:
    event = E.decode_event(_full(n_fields))
    assert event is not None and event.price_usd == 142.8731
    assert event.liquidation_fee_usd == 24.691358
    fields = dict(event.fields)
    assert len(fields) == n_fields and "positionPrice" not in fields


def test_payloads_too_short_or_foreign_are_not_events() -> None:
    assert E.decode_event(_full(15)) is None  # ends before liquidationFeeUsd
    assert E.decode_event(_full()[:-1][:16 + 7 * 32]) is None
    other = E.encode_event(bytes.fromhex("0102030405060708"), E.LIQUIDATE_FULL_FIELDS, FULL)
    assert E.decode_event(other) is None  # another event
    assert E.decode_event(E.LIQUIDATE_FULL_POSITION4 + b"\0" * 40) is None  # an instruction
    assert E.decode_event(b"") is None


def test_legacy_liquidate_position_event_gives_the_position_only() -> None:
    data = E.EVENT_TAG + E.LIQUIDATE_POSITION_EVENT + bytes(Pubkey.from_string(POSITION)) \
        + struct.pack("<Q", 99)
    event = E.decode_event(data)
    assert event is not None and event.liquidation and event.position_key == POSITION
    assert event.price_usd is None and event.fee_usd is None


def test_decrease_event_with_options() -> None:
    values = {"positionKey": POSITION, "transferToken": None, "price": 151_000_000,
              "priceSlippage": 152_000_000, "feeUsd": 700_000}
    event = E.decode_event(E.encode_event(E.DECREASE_POSITION_EVENT, E.DECREASE_FIELDS, values))
    assert event is not None and not event.liquidation
    assert event.price_usd == 151.0 and event.fee_usd == 0.7
    values["transferToken"] = 5
    event = E.decode_event(E.encode_event(E.DECREASE_POSITION_EVENT, E.DECREASE_FIELDS, values))
    assert event is not None and event.price_usd == 151.0


def test_base58_round_trip() -> None:
    for data in (b"", b"\0\0\x01", bytes(range(40)), _full()):
        assert E.b58decode(E.b58encode(data)) == data
    assert E.b58encode(bytes(Pubkey.from_string(PERPS))) == PERPS
    with pytest.raises(ValueError):
        E.b58decode("0OIl")


def test_events_come_from_successful_transactions_of_the_program_only() -> None:
    tx = transaction([_full(), b"\x01\x02"])
    assert [e.position_key for e in E.position_events(tx)] == [POSITION]
    assert list(E.position_events(transaction([_full()], err={"InstructionError": [0, 1]}))) == []
    # the same bytes emitted by another program are not Jupiter's events
    other = transaction([_full()])
    other["meta"]["loadedAddresses"]["readonly"] = [str(Pubkey.new_unique())]
    assert list(E.position_events(other)) == []


def test_liquidation_instruction_names_its_accounts() -> None:
    tx = transaction([], outer=[(E.LIQUIDATE_FULL_POSITION4 + b"\0", [POSITION, OWNER])])
    assert POSITION in E.liquidation_instruction_accounts(tx)
    tx = transaction([], outer=[(bytes(8), [POSITION])])
    assert E.liquidation_instruction_accounts(tx) == set()
