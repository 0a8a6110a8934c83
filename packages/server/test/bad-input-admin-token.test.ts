import { describe, expect, it } from 'vitest';
import { CommandLineError, readServerCommandSettings } from '../src/cli/environment.js';

// A token a client cannot send as `Authorization: Bearer <token>` would lock the admin out
// for good, since later starts keep the stored one.
describe('an admin token no client could send', () => {
  const unsendable = ['   ', 'two words', 'tab\there', 'ünïcode', 'line\nbreak', 'nul\u0000'];

  for (const token of unsendable) {
    it(`refuses ${JSON.stringify(token)} from the variable and the flag, naming neither value`,
      () => {
        const fromEnv = () => readServerCommandSettings([], { DSTACK_SERVER_ADMIN_TOKEN: token });
        const fromFlag = () => readServerCommandSettings(['--token', token], {});

        expect(fromEnv).toThrow(CommandLineError);
        expect(fromEnv).toThrow(/^Invalid admin token in DSTACK_SERVER_ADMIN_TOKEN: use visible/);
        expect(fromFlag).toThrow(/^Invalid admin token in --token: /);

        try {
          fromEnv();
        } catch (error) {
          expect((error as Error).message).not.toContain(token);
        }
      });
  }

  it('keeps a token of visible ASCII, and an empty one means a random token', () => {
    const token = 'Abc-123_~!#$%&*+./:;=?@^|';

    expect(readServerCommandSettings([], { DSTACK_SERVER_ADMIN_TOKEN: token }))
      .toMatchObject({ adminToken: token });
    expect(readServerCommandSettings(['--token', token], {})).toMatchObject({ adminToken: token });
    expect(readServerCommandSettings([], { DSTACK_SERVER_ADMIN_TOKEN: '' }))
      .toMatchObject({ adminToken: undefined });
    expect(readServerCommandSettings(['--token', ''], {})).toMatchObject({ adminToken: undefined });
  });
});
