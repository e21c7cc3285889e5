// validate-asyncapi.mjs: parse an AsyncAPI document with the AsyncAPI
// project's own parser and fail on any error-level diagnostic.
//
//   node tools/contract/validate-asyncapi.mjs docs/asyncapi.yaml
//
// Run with NODE_PATH pointing at the node_modules that
// scripts/contract-tools.sh installs (tests/system/test_contract.py does).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(pathToFileURL(process.env.CONTRACT_NODE_MODULES + '/'));
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const path = process.argv[2];
if (!path) {
	console.error('usage: validate-asyncapi.mjs FILE');
	process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, 'utf8'), {
	source: pathToFileURL(path).href,
});
const names = ['error', 'warning', 'info', 'hint'];
let errors = 0;
for (const d of diagnostics) {
	if (d.severity === DiagnosticSeverity.Error) errors++;
	console.log(`${names[d.severity] ?? d.severity} ${d.code} ${d.path.join('.')}: ${d.message}`);
}
if (!document || errors > 0) {
	console.error(`${path}: ${errors} error(s); not a valid AsyncAPI document`);
	process.exit(1);
}
const channels = document.channels().all().map((c) => c.address());
const messages = document.messages().all().length;
console.log(`${path}: valid AsyncAPI ${document.version()}, channels ${channels.join(', ')}, ${messages} messages`);
