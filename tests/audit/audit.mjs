// The GraphQL-over-HTTP audit against a running server: prints each audit that is not
// "ok" and exits non-zero when any is an error or a warning (notices are the spec's MAYs).
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://127.0.0.1:PORT/graphql');
  process.exit(2);
}
const results = await auditServer({ url });
let failed = 0;
for (const result of results) {
  if (result.status === 'ok') continue;
  if (result.status !== 'notice') failed += 1;
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
}
console.log(`${results.length} audits, ${failed} errors or warnings`);
process.exit(failed ? 1 : 0);
