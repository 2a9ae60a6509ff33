/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

/*
 * Automatic pruning (tart-facts §5.2), implemented on branch `prune`: make room for
 * required_bytes on the volume of cache/ by deleting least recently used cache entries,
 * never exclude_path (may be NULL). Disabled by TART_NO_AUTO_PRUNE. Returns 0 or -errno.
 */
int vm_prune_auto(uint64_t required_bytes, const char *exclude_path);
