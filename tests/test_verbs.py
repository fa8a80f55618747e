"""The verb registry: register_verb, get_verb_by_id and their errors."""

from __future__ import annotations

import pytest
from helpers import Like, Pin

from asyncfeeds import Activity, Verb, get_verb_by_id, register_verb


class Repin(Verb):
    id = 901
    infinitive = "repin"
    past_tense = "repinned"


class ImpostorPin(Verb):
    """Claims the Pin verb's id."""

    id = 5
    infinitive = "impostor-pin"
    past_tense = "impostor-pinned"


class SameNameAsPin(Verb):
    """Claims the Pin verb's infinitive under a free id."""

    id = 902
    infinitive = "pin"
    past_tense = "pinned"


def test_get_verb_by_id_returns_the_registered_class():
    assert get_verb_by_id(5) is Pin
    assert get_verb_by_id(6) is Like


def test_register_verb_returns_the_class_and_is_idempotent():
    assert register_verb(Repin) is Repin
    assert register_verb(Repin) is Repin
    assert get_verb_by_id(901) is Repin
    assert Activity(actor=1, verb="repin", object=2).verb is Repin


def test_register_verb_works_as_a_decorator():
    @register_verb
    class Share(Verb):
        id = 903
        infinitive = "share"
        past_tense = "shared"

    assert get_verb_by_id(903) is Share


def test_another_class_with_a_taken_id_is_a_value_error():
    with pytest.raises(ValueError, match="5"):
        register_verb(ImpostorPin)
    assert get_verb_by_id(5) is Pin


def test_another_class_with_a_taken_infinitive_is_a_value_error():
    with pytest.raises(ValueError, match="pin"):
        register_verb(SameNameAsPin)
    with pytest.raises(KeyError):
        get_verb_by_id(902)
    assert Activity(actor=1, verb="pin", object=2).verb is Pin


@pytest.mark.parametrize("bad", [Verb, int, "pin", Pin()])
def test_register_verb_takes_verb_subclasses_only(bad):
    with pytest.raises(TypeError):
        register_verb(bad)


def test_unknown_id_is_a_key_error_with_a_clear_message():
    with pytest.raises(KeyError, match="777"):
        get_verb_by_id(777)


def test_verb_names():
    assert str(Pin()) == "pin"
    assert (Pin.id, Pin.infinitive, Pin.past_tense) == (5, "pin", "pinned")


def test_an_application_verb_replaces_a_shipped_one_with_its_id():
    from asyncfeeds import verbs

    class Cheer(Verb):
        id = 3  # the shipped Love's id
        infinitive = "cheer"
        past_tense = "cheered"

    love = verbs.Love
    try:
        register_verb(Cheer)
        assert get_verb_by_id(3) is Cheer
        assert Activity(actor=1, verb="cheer", object=2).verb is Cheer
        with pytest.raises(ValueError, match="love"):
            Activity(actor=1, verb="love", object=2)

        class Other(Verb):
            id = 3
            infinitive = "other"
            past_tense = "othered"

        with pytest.raises(ValueError, match="already registered to Cheer"):
            register_verb(Other)
    finally:
        verbs._unregister(Cheer)
        verbs._shipped(love)
    assert get_verb_by_id(3) is love


def test_stream_framework_names_of_the_registry():
    import asyncfeeds
    from asyncfeeds import verbs

    assert asyncfeeds.register is register_verb and verbs.register is register_verb
    assert verbs.register(Pin) is Pin
    storage = verbs.get_verb_storage()
    assert storage[5] is Pin and dict(storage)[6] is Like and len(storage) == len(dict(storage))
    with pytest.raises(TypeError, match="register_verb"):
        storage[99] = Pin  # type: ignore[index]
    with pytest.raises(KeyError, match="99"):
        storage[99]
    assert Pin.serialize() == 5 and Pin().serialize() == 5
