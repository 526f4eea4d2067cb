#!/usr/bin/env bash
# test_client_cyrus.sh on a hashed Cyrus spool (hashimapspool: yes): each
# user's mailboxes live under <partition>/<letter>/user/<name>, so S and T
# are the partitions' hash folders; everything else is checked the same way.
set -euo pipefail
MR_CYRUS_HASHED=1 exec bash "${MR_SRC:?MR_SRC must point at the source tree}/tests/integration/test_client_cyrus.sh"
