/**
 * Splits text into pieces of at most `maxBytes` UTF-8 bytes each, never inside a code
 * point, so that every piece is valid text and the pieces join back to the original.
 */
export function splitUtf8(text: string, maxBytes: number): string[] {
  if (maxBytes < 4) {
    throw new RangeError('maxBytes must leave room for one code point (4 bytes)');
  }

  const pieces: string[] = [];
  let piece = '';
  let pieceBytes = 0;

  for (const char of text) {
    const bytes = utf8Length(char);

    if (pieceBytes + bytes > maxBytes) {
      pieces.push(piece);
      piece = '';
      pieceBytes = 0;
    }

    piece += char;
    pieceBytes += bytes;
  }

  if (piece !== '' || pieces.length === 0) {
    pieces.push(piece);
  }

  return pieces;
}

/** UTF-8 length of a string, as a remote service counts it. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
