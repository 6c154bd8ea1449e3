"""A user's script with the typed methods, as it would be written outside the package.

Not a test module: tests/typed/test_user_example.py runs ``mypy --strict`` on it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import msgspec

from sippet_async import (
    Call,
    Contact,
    CreateCall,
    CreateContact,
    NotFoundError,
    RecordIterator,
    ResultTypeError,
    SippetClient,
    UpdateContact,
)


async def main(client: SippetClient) -> list[str]:
    ada: Contact = await client.contacts.create(
        CreateContact(full_name="Ada Lovelace", phone_e164="+15555550123", tags=("vip",)))
    assert isinstance(ada.id, str)
    updated = await client.contacts.update(ada.id, UpdateContact(company=None))
    if updated.company is not msgspec.UNSET and updated.company is not None:
        print(updated.company.upper())
    names: list[str] = []
    contacts: RecordIterator[Contact] = client.contacts.list(
        fields=["id", "fullName"], sort="-insertedAt", page_size=50, limit=100)
    async for contact in contacts:
        if isinstance(contact.full_name, str):
            names.append(contact.full_name)
    try:
        again = await client.contacts.get(ada.id, fields=["id", "insertedAt"])
    except NotFoundError:
        return names
    except ResultTypeError as error:
        print(error.path, error.expected)
        raise
    if isinstance(again.inserted_at, datetime):
        print(again.inserted_at.isoformat())
    call: Call = await client.calls.create(CreateCall(to_e164="+15555550199", contact_id=ada.id))
    async for placed in client.calls.list(fields=["id", "status"]):
        print(placed.status)
    await client.calls.end(str(call.id))
    await client.contacts.destroy(ada.id)
    return names


if __name__ == "__main__":
    async def _run() -> None:
        async with SippetClient() as client:
            print(await main(client))

    asyncio.run(_run())
