"""The ``server`` role: watch directories, announce files, push them to clients on request.

Modules: :mod:`.config` (INI → chain configs), :mod:`.announcer` (watch and announce),
:mod:`.listen` (``listen`` chains), :mod:`.requests` (the ROUTER request socket),
:mod:`.access` (which files a request may name), :mod:`.transfer` (the push pool),
:mod:`.deleter` (``delete``/``remove_delay``),
:mod:`.messages` (announcement data, standalone form included), :mod:`.service` (the process),
:mod:`.role` (the command line).
"""
