"""API tokens that can be taken back (docs/security.md "API tokens").

simplejwt issues the tokens; this module makes them revocable and single-use:

- Every token carries its account's epoch (`TokenEpoch`) of the moment it was issued. A logout
  (`POST /api/v1.0/donors/logout/`) or a password change (any way: the admin, `changepassword`, `set_password`)
  moves the epoch on, and from then every token issued before is refused: access tokens by
  `EpochJWTAuthentication` on every request, refresh tokens by `TokenRefreshSerializer`. Outstanding refresh
  tokens are also blacklisted, so the admin's token lists say the same.
- A refresh token is used once: refreshing answers a new refresh token (ROTATE_REFRESH_TOKENS) and blacklists the
  one presented, in the same step that checks it was not used before (the unique row of token_blacklist), so two
  concurrent refreshes with one token cannot both succeed.

Tokens issued before epochs existed carry none and count as epoch 0: they work until the account's first revocation.
"""

import logging
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import serializers
from rest_framework_simplejwt import serializers as simplejwt_serializers
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from donor.models import TokenEpoch

logger = logging.getLogger("donor.tokens")

EPOCH_CLAIM = "epoch"
REVOKED_MESSAGE = "This token was revoked (signed out, or the password changed). Sign in again."


def token_epoch(user_id: Any) -> int:
    return TokenEpoch.objects.filter(user_id=user_id).values_list("epoch", flat=True).first() or 0


def tokens_revoke(*, user_id: Any, reason: str) -> int:
    """Refuse every token this account holds from now on; returns the new epoch. Safe under concurrency (the
    increment is one UPDATE)."""
    with transaction.atomic():
        TokenEpoch.objects.get_or_create(user_id=user_id)
        TokenEpoch.objects.filter(user_id=user_id).update(
            epoch=F("epoch") + 1, revoked_at=timezone.now(), reason=reason[:40]
        )
        outstanding = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )
    epoch = token_epoch(user_id)
    logger.info("API tokens of user %s revoked (%s): epoch %s", user_id, reason, epoch)
    return epoch


def _check_epoch(token: Token, user_id: Any) -> None:
    if int(token.get(EPOCH_CLAIM, 0)) < token_epoch(user_id):
        raise AuthenticationFailed(REVOKED_MESSAGE, code="token_revoked")


class EpochRefreshToken(RefreshToken):
    """A refresh token (and the access tokens made from it, which copy its claims) stamped with the epoch."""

    @classmethod
    def for_user(cls, user: AbstractBaseUser) -> "EpochRefreshToken":
        token = cast("EpochRefreshToken", super().for_user(user))
        token[EPOCH_CLAIM] = token_epoch(user.pk)
        return token


class TokenObtainPairSerializer(simplejwt_serializers.TokenObtainPairSerializer):
    """SIMPLE_JWT["TOKEN_OBTAIN_SERIALIZER"]: simplejwt's (and its schema's name), issuing epoch-stamped tokens."""

    token_class = EpochRefreshToken


class TokenRefreshSerializer(serializers.Serializer):
    """SIMPLE_JWT["TOKEN_REFRESH_SERIALIZER"]: a refresh token is good for one refresh, and only while its epoch
    is current. Answers a new access and a new refresh token."""

    refresh = serializers.CharField()
    access = serializers.CharField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            refresh = RefreshToken(attrs["refresh"])  # signature, expiry, and not yet blacklisted
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed("No active account found for the given token.", code="no_active_account")
        _check_epoch(refresh, user.pk)
        _use_once(refresh, user)
        refresh.set_jti()
        refresh.set_exp()
        refresh.set_iat()
        refresh[EPOCH_CLAIM] = token_epoch(user.pk)
        refresh.outstand()
        return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _use_once(refresh: RefreshToken, user: User) -> None:
    """Blacklist the presented token; refuse it if that had already happened (also in a concurrent request)."""
    jti = refresh.payload[api_settings.JTI_CLAIM]
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=jti,
        defaults={
            "user": user,
            "created_at": refresh.current_time,
            "token": str(refresh),
            "expires_at": datetime_from_epoch(refresh.payload["exp"]),
        },
    )
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError as exc:  # the unique row exists: another request used this token first
        logger.warning("A refresh token of user %s was presented again after its use", user.pk)
        raise InvalidToken("Token is blacklisted") from exc


class EpochJWTAuthentication(JWTAuthentication):
    """DEFAULT_AUTHENTICATION_CLASSES: simplejwt's, refusing an access token from before the account's last
    revocation (one more indexed read per authenticated request)."""

    def get_user(self, validated_token: Token) -> AbstractBaseUser:
        user = super().get_user(validated_token)
        _check_epoch(validated_token, user.pk)
        return user


def revoke_on_password_change(
    sender: type, instance: AbstractBaseUser, update_fields: Any = None, **kwargs: Any
) -> None:
    """pre_save of the user model: a new password revokes every token issued before it, whichever way it was
    set (the admin, `changepassword`, a reset). Saves that do not write the password (last_login) cost nothing."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = type(instance)._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        tokens_revoke(user_id=instance.pk, reason="password changed")  # in the save's transaction: both or neither


class EpochJWTScheme(SimpleJWTScheme):
    """The schema's bearer scheme for EpochJWTAuthentication: simplejwt's (drf-spectacular maps by exact class)."""

    target_class = "donor.tokens.EpochJWTAuthentication"
