// The test S3 server: s3rver on 127.0.0.1 that checks every SigV4 signature with one key pair.
'use strict';
const S3rver = require('@20minutes/s3rver');
const { DUMMY_ACCOUNT } = require('@20minutes/s3rver/lib/models/account');

const [port, directory, ...buckets] = process.argv.slice(2);
// Only the test's key pair signs: the built-in S3RVER/S3RVER pair is revoked.
DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
DUMMY_ACCOUNT.createKeyPair(process.env.S3_ACCESS_KEY_ID, process.env.S3_SECRET_ACCESS_KEY);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: false,
  vhostBuckets: false,
  allowMismatchedSignatures: false,
  configureBuckets: buckets.map((name) => ({ name })),
});
server.run((error) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
  console.log(`s3rver listening on 127.0.0.1:${port}`);
});
