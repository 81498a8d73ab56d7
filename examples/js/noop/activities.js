// noop: does nothing and returns binary/null without decoding its arguments
// (the cheapest possible attempt, for benchmarks).
import { Payload, rawArgs } from 'wharf-activity';

const NULL = Payload.binaryNull();

export const activities = {
  noop: rawArgs(() => NULL),
};
