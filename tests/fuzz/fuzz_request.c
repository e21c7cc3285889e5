/* libFuzzer target: request parsing and reply building on any bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct request_limits limits = {
	    .max_message_bytes = 65536,
	    .max_quantity = 10,
	    .max_sections = 100,
	    .max_section_capacity = 1000000,
	    .hold_ttl_default_s = 600,
	    .hold_ttl_max_s = 3600,
	};
	struct request req;
	struct request_error err;
	struct reply reply = {.remaining = -1};
	char *json;

	if (request_parse((const char *)data, size, &limits, &req, &err) == 0) {
		reply.status = STATUS_CONFIRMED;
		reply.booking_id = 1;
		reply.quantity = req.quantity;
		json = reply_to_json(req.request_id,
				     request_type_name(req.type), &reply);
		if (json) {
			char *again =
			    reply_rewrite_request_id(json, req.request_id);

			free(again);
		}
		free(json);
		request_free(&req);
		return 0;
	}
	reply_set_error(&reply, err.code, "%s", err.message);
	json = reply_to_json(err.request_id, err.type_name, &reply);
	if (!json)
		abort(); /* a refusal must always be answerable */
	free(json);
	return 0;
}
