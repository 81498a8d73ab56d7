// Activities that exercise the kit's edge cases (see ../kits.test.mjs).
import {
  ApplicationError, CancelledError, completeAsync, heartbeat, heartbeatDetails, info, isCancelled, log,
} from 'wharf-activity';

const typeName = (a) =>
  a === null ? 'null' : a instanceof Uint8Array ? 'bytes' : Array.isArray(a) ? 'array' : typeof a;

export const activities = {
  echo_types: (...args) => args.map(typeName),
  identity: (value) => value,
  two: (a, b) => [a, b],
  nothing() {},
  boom() {
    throw new RangeError('missing');
  },
  async cancel() {
    throw new CancelledError();
  },
  later: () => completeAsync(),
  'app-error'() {
    throw new ApplicationError('custom', {
      type: 'Custom', nonRetryable: true, details: [{ k: 1 }, new Uint8Array([1, 2])], nextRetryDelay: 1500,
    });
  },
  about() {
    const i = info();
    return {
      attempt: i.attempt, activity_id: i.activityId, activity_type: i.activityType,
      task_token: new TextDecoder().decode(i.taskToken), heartbeat_details: heartbeatDetails(),
      deadline_ms: i.deadlineMs, workflow_id: i.workflowId,
    };
  },
  chatty() {
    console.log('to stdout');
    log.trace('t');
    log.debug('d');
    log.info('i', 1);
    log.warn('w');
    log.error('e');
    return [heartbeat('a', 1, { x: 2 }), isCancelled()];
  },
};
