// noop: does nothing and returns binary/null without decoding its arguments
// (the cheapest possible attempt, for benchmarks).
//
// count: adds one to a module-level counter and returns the new value. Every
// attempt runs in a fresh instance, so it always returns 1. Its optional
// argument fail_until_attempt makes attempts before that one fail retryably
// (type CountFailed, details [{"count": n}]).
//
// remember(key, value) keeps a JSON value in the process cache and
// recall(key) returns it (or null): the one thing that does outlive an
// attempt, on purpose, on the process that ran it.
import { ApplicationError, Payload, cache, info, rawArgs } from 'wharf-activity';

const NULL = Payload.binaryNull();

// Lives as long as the instance: one attempt.
let counter = 0;

export const activities = {
  noop: rawArgs(() => NULL),

  // The default keeps the argument optional (the kit checks fn.length).
  count(failUntilAttempt = null) {
    counter += 1;
    const { attempt } = info();
    if (Number.isInteger(failUntilAttempt) && attempt < failUntilAttempt) {
      throw new ApplicationError(`attempt ${attempt} failed with count ${counter}`, {
        type: 'CountFailed',
        details: [{ count: counter }],
      });
    }
    return counter;
  },

  remember(key, value) {
    cache.setJson(key, value);
    return null;
  },

  recall(key) {
    return cache.getJson(key);
  },
};
