import { randomInt } from 'node:crypto';

const adjectives = [
  'brave', 'calm', 'clever', 'cool', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'kind',
  'lively', 'lucky', 'mighty', 'nice', 'odd', 'proud', 'quick', 'quiet', 'rare', 'shiny',
  'silly', 'smart', 'swift', 'tall', 'tidy', 'warm', 'wet', 'wise', 'witty', 'young',
];

const animals = [
  'ant', 'bat', 'bear', 'bee', 'cat', 'cobra', 'crab', 'crow', 'deer', 'dog', 'dove',
  'eagle', 'eel', 'elk', 'fox', 'frog', 'goat', 'hawk', 'horse', 'koala', 'lemur', 'lion',
  'lynx', 'mangust', 'moth', 'mouse', 'newt', 'otter', 'owl', 'panda', 'seal', 'shark',
  'sheep', 'snail', 'swan', 'tiger', 'toad', 'wolf', 'yak', 'zebra',
];

/** A random `<adjective>-<animal>` stem; the caller adds the `-<n>` that makes it unique. */
export function randomRunNameStem(): string {
  return `${adjectives[randomInt(adjectives.length)]}-${animals[randomInt(animals.length)]}`;
}

/**
 * The first free `<stem>-<n>` (n from 1) among names already taken, as the original names
 * runs that have no name.
 */
export function nextRunName(stem: string, taken: ReadonlySet<string>): string {
  for (let n = 1; ; n += 1) {
    const name = `${stem}-${n}`;

    if (!taken.has(name)) {
      return name;
    }
  }
}

/** The rule every run and fleet name follows. */
export const resourceNamePattern = /^[a-z][a-z0-9-]{1,40}$/;
