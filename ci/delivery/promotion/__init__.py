"""Promotion: each environment's release moves dev -> staging -> prod by exact digest, through git.

- ``gates``: soak, freeze windows, approval, verification, hold: pure functions -> ``Decision``;
- ``copy``: the digest-preserving registry copy (mount on the same host, streamed otherwise);
- ``steps``: resolve, gate, copy, update, validate, commit, push;
- ``promote``: promote, rollback, hold release, verify-release;
- ``report``: status and history;
- ``cli``: their commands.
"""
