"""Destination composition, request/published destinations, uri rewriting and replace_mda."""

from __future__ import annotations

import datetime as dt
import os
import socket
import stat

import pytest
from trollmoves_roles.protocol import delivery
from trollmoves_roles.protocol.messages import message_type, transfer_key, uids_of

from trollmoves_core.uri import parse_uri

HOST = socket.gethostname()


def test_compose_destination_from_message_fields():
    data = {"platform_name": "NOAA-19", "start_time": dt.datetime(2024, 1, 2, 3, 4), "uid": "a.dat"}
    assert delivery.compose_destination("/out/{platform_name}/{start_time:%Y%m%d}/", data) == "/out/NOAA-19/20240102/"
    assert delivery.compose_destination("ftp://h/plain/", data) == "ftp://h/plain/"
    with pytest.raises(KeyError):
        delivery.compose_destination("/out/{missing}/", data)


@pytest.mark.parametrize(("destination", "login", "sent", "published"), [
    ("/data/out/", None, f"file://{HOST}/data/out/", f"file://{HOST}/data/out/"),
    ("file:///data/out/", None, f"file://{HOST}/data/out/", f"file://{HOST}/data/out/"),
    ("ftp://127.0.0.2:2121/up/", "bob:secret", "ftp://bob:secret@127.0.0.2:2121/up/", "ftp://127.0.0.2:2121/up/"),
    ("scp://h/in/", "bob", "scp://bob@h/in/", "scp://h/in/"),
    ("ftp://alice:pw@h/in/", None, "ftp://alice:pw@h/in/", "ftp://h/in/"),
    ("ftp://alice@h/in/", "bob:x", "ftp://bob:x@h/in/", "ftp://h/in/"),
    ("s3://bucket/dir/", None, "s3://bucket/dir/", "s3://bucket/dir/"),
])
def test_request_destination(destination, login, sent, published):
    assert delivery.request_destination(destination, login) == sent
    assert delivery.request_destination(destination, login, with_credentials=False) == published


@pytest.mark.parametrize(("destination", "directory"), [
    ("/data/out/", "/data/out/"),
    ("data/out/", "data/out/"),  # upstream's bug 4 (no scheme) does not apply here
    ("file:///data/out/renamed.dat", "/data/out"),
    ("ftp://h/up/", "/srv/ftp/up/"),
    ("scp://h/in/", "/in/"),
    ("s3://bucket/dir/", None),
])
def test_local_directory(destination, directory):
    assert delivery.local_directory(destination, ftp_root="/srv/ftp") == directory


def test_make_directory_creates_world_writable_dirs_and_leaves_existing_ones(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    delivery.make_directory(str(existing / "a" / "b"))
    assert stat.S_IMODE(os.stat(existing / "a").st_mode) == 0o777
    assert stat.S_IMODE(os.stat(existing / "a" / "b").st_mode) == 0o777
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o755
    delivery.make_directory(str(existing))  # no error on an existing directory


def test_uids_and_key_of_file_dataset_collection():
    assert uids_of({"uid": "a", "uri": "/a"}) == ["a"]
    dataset = {"dataset": [{"uid": "b", "uri": "/b"}, {"uid": "a", "uri": "/a"}]}
    assert uids_of(dataset) == ["b", "a"]
    collection = {"collection": [{"dataset": [{"uid": "a", "uri": "/a"}]}, {"uid": "b", "uri": "/b"}]}
    assert sorted(uids_of(collection)) == ["a", "b"]
    assert transfer_key(["b", "a"]) == transfer_key(["a", "b"]) != transfer_key(["a"])
    assert [message_type(d) for d in ({"uri": 1}, dataset, collection, {})] == \
        ["file", "dataset", "collection", "file"]


@pytest.mark.parametrize(("destination", "login", "uri"), [
    # the upstream table (§3.7 step 5)
    ("ftp://127.0.0.1:2121/up/", None, "/up/f1.dat"),
    ("ftp://127.0.0.2/data/", "user:pass", "ftp://user@127.0.0.2/data/f1.dat"),
    ("s3://bucket/dir/", None, "s3://bucket/dir/f1.dat"),
    ("/data/out/", None, "/data/out/f1.dat"),
    (f"file://{HOST}/data/out/", None, "/data/out/f1.dat"),
    ("/data/out/renamed.dat", None, "/data/out/renamed.dat"),
])
def test_local_message_data_rewrites_uri(destination, login, uri):
    announcement = {"name": "f1", "uri": "/in/f1.dat", "uid": "f1.dat", "request_address": "127.0.0.1:9092",
                    "destination": "x"}
    data = delivery.local_message_data(announcement, destination, login, {})
    assert data == {"name": "f1", "uri": uri, "uid": "f1.dat", "origin": "127.0.0.1:9092"}
    assert announcement["uri"] == "/in/f1.dat"  # the announcement itself is untouched


def test_local_message_data_dataset_and_rel_path():
    announcement = {"dataset": [{"uri": "/in/a.dat", "uid": "a.dat"}, {"uri": "/in/b.dat", "uid": "b.dat",
                                                                       "path": "sub/"}],
                    "request_address": "127.0.0.1:9092"}
    data = delivery.local_message_data(announcement, "/out/", None, {})
    assert [d["uri"] for d in data["dataset"]] == ["/out/a.dat", "/out/sub/b.dat"]


def test_delivered_uri_keeps_port_for_remote_hosts():
    location = parse_uri("ftp://192.0.2.7:2121/data/")
    assert delivery.delivered_uri(location, "/in/x.nc", "x.nc", None, "bob") == "ftp://bob@192.0.2.7:2121/data/x.nc"


def test_replace_mda_overwrites_and_maps_values():
    data = {"sensor": "avhrr", "platform_name": "NOAA-19", "other": 1, "orbit": 5}
    metadata = {"sensor": "avhrr/3", "platform_name": "NOAA-19:noaa19|Metop-B:metopb", "destination": "/out/",
                "orbit": "7:8"}
    assert delivery.replace_mda(data, metadata) == {"sensor": "avhrr/3", "platform_name": "noaa19", "other": 1,
                                                    "orbit": 5}
    assert delivery.replace_mda({"platform_name": "Aqua"}, metadata) == {"platform_name": "Aqua"}
    assert delivery.replace_mda({"url": "a"}, {"url": "ftp://h/x"}) == {"url": "ftp://h/x"}


def test_on_host_replaces_the_host_keeping_user_password_and_port():
    assert delivery.on_host("ftp://u:p@w@h1:2121/d/", "h2") == "ftp://u:p@w@h2:2121/d/"
    assert delivery.on_host("sftp://u@h1/d/", "h2:2222") == "sftp://u@h2:2222/d/"
    assert delivery.on_host("scp://h1:22/d/", "[::1]:2200") == "scp://[::1]:2200/d/"
    assert delivery.on_host("scp://h1/d/", "::1") == "scp://[::1]/d/"
    assert delivery.on_host("scp://h1:2200/d/", "[::1]") == "scp://[::1]:2200/d/"


@pytest.mark.parametrize("bad", ["", "a/b", "u@h", "h:0", "h:99999", "h:x", "[::1", "[::1]x", "h ost"])
def test_split_host_refuses_what_is_no_host(bad):
    with pytest.raises(ValueError):
        delivery.split_host(bad)


def test_served_destination_believes_only_the_listed_backup_hosts():
    requested = "ftp://u@127.0.0.2:2121/up/"
    assert delivery.served_destination(requested, {"destination": "ftp://127.0.0.1:2121/up/"}, ["h3", "127.0.0.1"]) == \
        "ftp://u@127.0.0.1:2121/up/"
    assert delivery.served_destination(requested, {"destination": "ftp://evil:2121/up/"}, ["127.0.0.1"]) == requested
    same = {"destination": "ftp://127.0.0.2:2121/up/"}
    assert delivery.served_destination(requested, same, ["127.0.0.1"]) == requested
    assert delivery.served_destination(requested, {"destination": "ftp://127.0.0.1:2121/up/"}, []) == requested
    assert delivery.served_destination(requested, "not a dict", ["127.0.0.1"]) == requested
    assert delivery.served_destination("/plain/path/", {"destination": "file://x/plain/path/"}, ["x"]) == "/plain/path/"
