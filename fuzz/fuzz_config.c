/* fuzz_config.c: libFuzzer target for config_load_string: any bytes must either load a config
 * that config_free releases completely, or fail with an error, never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Unknown-key warnings would flood the fuzzer's output and slow it down. */
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* config_load_string takes a C string; a copy gives ASan exact bounds to check. */
	char *json = xmalloc(size + 1);
	struct config cfg;
	char err[256];

	memcpy(json, data, size);
	json[size] = '\0';
	if (config_load_string(json, &cfg, err, sizeof(err)) == 0) {
		/* Exercise the lookups on whatever loaded. */
		config_find_domain(&cfg, json, size);
		if (cfg.server_count > 0)
			config_address_blocked(&cfg.servers[0], json, size);
		config_has_tls(&cfg);
		config_free(&cfg);
	}
	free(json);
	return 0;
}
