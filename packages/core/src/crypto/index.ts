export * from './encryption-key-config.js';
export * from './stored-value.js';
export * from './create-cipher.js';
export { aesGcmOpen, aesGcmSeal } from './aes-gcm.js';
export * from './encrypted-columns.js';
export * from './reencrypt-store.js';
